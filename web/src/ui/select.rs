//! A labelled `<select>` whose shown value follows the state (a re-render alone does not
//! move a select the visitor has changed, so an effect sets it).

use std::rc::Rc;

use web_sys::HtmlSelectElement;
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct SelectProps {
    pub id: AttrValue,
    pub label: AttrValue,
    /// `(value, text)` of each option.
    pub options: Rc<Vec<(String, String)>>,
    pub value: String,
    pub on_change: Callback<String>,
}

#[function_component(Select)]
pub fn select(p: &SelectProps) -> Html {
    let node = use_node_ref();
    {
        let node = node.clone();
        use_effect_with(p.value.clone(), move |v| {
            if let Some(sel) = node.cast::<HtmlSelectElement>() {
                sel.set_value(v);
            }
        });
    }
    let onchange = p.on_change.reform(|e: Event| e.target_unchecked_into::<HtmlSelectElement>().value());
    html! {
        <div class="field">
            <label for={p.id.clone()}>{ p.label.clone() }</label>
            <select id={p.id.clone()} ref={node} {onchange}>
                { for p.options.iter().map(|(v, t)| html! { <option value={v.clone()} selected={*v == p.value}>{ t.clone() }</option> }) }
            </select>
        </div>
    }
}
